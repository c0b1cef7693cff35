<?php
/**
 * The bridge's only calls into Magento 1 / OpenMage: load an order as sync
 * modules do, dispatch an event to its observers, log to var/log.
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

    public function log(string $level, string $message, array $context = []): void
    {
        $levels = ['error' => Zend_Log::ERR, 'warning' => Zend_Log::WARN, 'info' => Zend_Log::INFO];
        $text = $context ? $message . ' ' . json_encode($context) : $message;
        Mage::log($text, $levels[$level] ?? Zend_Log::INFO, 'order_sync.log');
    }
}
