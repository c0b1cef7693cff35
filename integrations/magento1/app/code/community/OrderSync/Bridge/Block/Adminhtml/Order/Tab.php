<?php
/**
 * The order page's "Sync" tab: each sync service's rows of this order (the
 * placement and its later events) with their state, attempts, last error
 * and remote id, and the Re-send, Un-park and Skip buttons.
 */

class OrderSync_Bridge_Block_Adminhtml_Order_Tab extends Mage_Adminhtml_Block_Template
    implements Mage_Adminhtml_Block_Widget_Tab_Interface
{
    public function getTabLabel()
    {
        return $this->__('Sync');
    }

    public function getTabTitle()
    {
        return $this->__('Order Sync: this order at each sync service');
    }

    public function canShowTab()
    {
        return Mage::getSingleton('admin/session')->isAllowed('sales/ordersync');
    }

    public function isHidden()
    {
        return false;
    }

    protected function _toHtml()
    {
        Mage::helper('ordersync_bridge')->requireLibrary();
        $order = Mage::registry('current_order');
        $controller = new \OrderSync\Bridge\Admin\Controller(Mage::getModel('ordersync_bridge/adminAdapter'));
        return \OrderSync\Bridge\Admin\Html::tab(
            $controller->orderTab((int) ($order ? $order->getId() : $this->getRequest()->getParam('order_id'))),
            $this->getUrl('*/ordersync/act'),
            $this->getFormKey()
        );
    }
}
