<?php
/**
 * The admin pages' only calls into Magento 1's admin: the request, the
 * module's settings (the token decrypted), the signed-in user, messages.
 * Loaded after OrderSync_Bridge_Helper_Data::requireLibrary().
 */

class OrderSync_Bridge_Model_AdminAdapter implements \OrderSync\Bridge\Admin\AdminAdapter
{
    public function param(string $name): mixed
    {
        return Mage::app()->getRequest()->getParam($name);
    }

    public function apiUrl(): ?string
    {
        return Mage::getStoreConfig('order_sync/api/url');
    }

    public function apiToken(): ?string
    {
        $stored = (string) Mage::getStoreConfig('order_sync/api/token');
        return $stored === '' ? null : Mage::helper('core')->decrypt($stored);
    }

    public function userName(): string
    {
        $user = Mage::getSingleton('admin/session')->getUser();
        return $user ? (string) $user->getUsername() : 'unknown';
    }

    public function addSuccess(string $message): void
    {
        Mage::getSingleton('adminhtml/session')->addSuccess($message);
    }

    public function addError(string $message): void
    {
        Mage::getSingleton('adminhtml/session')->addError($message);
    }
}
