<?php
/**
 * Loads the shared bridge library: from Composer's autoloader when the shop
 * uses one, else from lib/OrderSync/Bridge, where modman puts it (Magento 1's
 * own autoloader does not map PHP namespaces to files).
 */

class OrderSync_Bridge_Helper_Data extends Mage_Core_Helper_Abstract
{
    private static $registered = false;

    public function requireLibrary()
    {
        if (self::$registered) {
            return;
        }
        self::$registered = true;
        $composer = Mage::getBaseDir() . '/vendor/autoload.php';
        if (is_file($composer)) {
            require_once $composer;
        }
        if (class_exists('OrderSync\\Bridge\\Admin\\Controller')) {
            return;
        }
        $lib = Mage::getBaseDir('lib') . '/OrderSync/Bridge/';
        spl_autoload_register(function ($class) use ($lib) {
            $prefix = 'OrderSync\\Bridge\\';
            if (strncmp($class, $prefix, strlen($prefix)) === 0) {
                $file = $lib . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                }
            }
        }, true, true);
    }
}
