<?php
/**
 * The bridge's only calls into Magento 1 / OpenMage: load an order as sync
 * modules do, dispatch an event to its observers, Magento's database
 * connection, log to var/log/order_sync.log.
 */

class OrderSync_Bridge_Model_Adapter implements \OrderSync\Bridge\Adapter
{
    public function loadOrder(int $entityId): ?object
    {
        $order = Mage::getModel('sales/order')->load($entityId);
        return $order->getId() ? $order : null;
    }

    public function loadDocument(string $kind, int $entityId): ?object
    {
        if (!in_array($kind, ['invoice', 'shipment', 'creditmemo'], true)) {
            return null;
        }
        $document = Mage::getModel('sales/order_' . $kind)->load($entityId);
        return $document->getId() ? $document : null;
    }

    public function dispatch(string $event, array $arguments): void
    {
        Mage::dispatchEvent($event, $arguments);
    }

    public function database(): \PDO
    {
        return Mage::getSingleton('core/resource')->getConnection('core_write')->getConnection();
    }

    public function tableName(string $name): string
    {
        // A name without a `/` is a plain table name: Magento adds its prefix.
        return Mage::getSingleton('core/resource')->getTableName($name);
    }

    public function log(string $level, string $message, array $context = []): void
    {
        $levels = ['error' => Zend_Log::ERR, 'warning' => Zend_Log::WARN, 'info' => Zend_Log::INFO];
        $text = $context ? $message . ' ' . json_encode($context) : $message;
        // Forced: Magento 1 ships with logging off (System > Configuration >
        // Developer > Log Settings), and a bridge whose errors vanish in a
        // default shop cannot be run.
        Mage::log($text, $levels[$level] ?? Zend_Log::INFO, 'order_sync.log', true);
    }
}
