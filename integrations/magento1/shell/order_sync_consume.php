<?php
/**
 * php shell/order_sync_consume.php --consumer erp [--max-messages N]
 *
 * Runs the order-sync bridge inside Magento 1 / OpenMage: each order
 * delivered on <prefix>.que.<consumer> is loaded with
 * Mage::getModel('sales/order')->load($id) and dispatched with
 * Mage::dispatchEvent('sales_order_place_after_que', array('order' => $order)),
 * then acked synced, or failed with the observer's exception message.
 * Settings from app/etc/local.xml <global><order_sync> (url, prefix,
 * consumer) or the options --url, --prefix, --consumer. Stops cleanly on
 * SIGTERM (supervisor, systemd).
 */

// The shop's shell/abstract.php, beside this script as the shop has it: by
// the path it was started with, since modman links this file in (a plain
// `require 'abstract.php'` would look beside the link's target instead).
require_once is_file(dirname($_SERVER['SCRIPT_FILENAME']) . '/abstract.php')
    ? dirname($_SERVER['SCRIPT_FILENAME']) . '/abstract.php'
    : __DIR__ . '/abstract.php';

class OrderSync_Shell_Consume extends Mage_Shell_Abstract
{
    public function run()
    {
        $this->requireBridge();
        $config = array();
        $node = Mage::getConfig()->getNode('global/order_sync');
        if ($node) {
            $config = $node->asArray();
        }
        foreach (array('url', 'prefix', 'consumer') as $key) {
            if ($this->getArg($key)) {
                $config[$key] = $this->getArg($key);
            }
        }
        try {
            $settings = \OrderSync\Bridge\Settings::fromArray($config);
        } catch (InvalidArgumentException $e) {
            fwrite(STDERR, $e->getMessage() . " (app/etc/local.xml or options)\n");
            exit(2);
        }
        $bridge = new \OrderSync\Bridge\Bridge(Mage::getModel('ordersync_bridge/adapter'), $settings);
        $handled = $bridge->run((int) $this->getArg('max-messages'));
        echo "order-sync: $handled order(s) handled for {$settings->consumer}\n";
    }

    /** php-amqplib (Composer's, else Debian's package) and the bridge (lib/OrderSync/Bridge, by modman). */
    private function requireBridge()
    {
        // The bridge's classes, from Composer or lib/OrderSync/Bridge (modman),
        // all of them by autoloading; php-amqplib from Composer, else Debian's.
        Mage::helper('ordersync_bridge')->requireLibrary();
        if (!class_exists('PhpAmqpLib\\Connection\\AMQPStreamConnection')) {
            require_once 'PhpAmqpLib/autoload.php';
        }
    }

    public function usageHelp()
    {
        return "Usage: php shell/order_sync_consume.php --consumer erp [--max-messages N] [--url amqp://...] [--prefix shop]\n";
    }
}

$shell = new OrderSync_Shell_Consume();
$shell->run();
