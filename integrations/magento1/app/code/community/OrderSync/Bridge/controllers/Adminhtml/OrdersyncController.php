<?php
/**
 * Sales > Order Sync: the grid of each order's sync status per sync service
 * (index), and re-send, un-park or skip (act: the grid's mass action and the
 * order tab's buttons).
 */

class OrderSync_Bridge_Adminhtml_OrdersyncController extends Mage_Adminhtml_Controller_Action
{
    public function preDispatch()
    {
        Mage::helper('ordersync_bridge')->requireLibrary();
        return parent::preDispatch();
    }

    public function indexAction()
    {
        $this->_title($this->__('Sales'))->_title($this->__('Order Sync'));
        $this->loadLayout();
        $this->_setActiveMenu('sales/ordersync');
        $this->_addContent($this->getLayout()->createBlock('ordersync_bridge/adminhtml_orders'));
        $this->renderLayout();
    }

    public function actAction()
    {
        if (!$this->getRequest()->isPost() || !$this->_validateFormKey()) {
            $this->_getSession()->addError($this->__('Invalid form key; please try again.'));
        } else {
            $controller = new \OrderSync\Bridge\Admin\Controller(Mage::getModel('ordersync_bridge/adminAdapter'));
            $controller->act();
        }
        $this->_redirectReferer();
    }

    protected function _isAllowed()
    {
        $resource = $this->getRequest()->getActionName() === 'act' ? 'sales/ordersync/actions' : 'sales/ordersync';
        return Mage::getSingleton('admin/session')->isAllowed($resource);
    }
}
