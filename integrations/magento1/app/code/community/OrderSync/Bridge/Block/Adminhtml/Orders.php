<?php
/**
 * The Order Sync grid: order-sync's rows per order and sync service, with
 * filters and the mass action.
 */

class OrderSync_Bridge_Block_Adminhtml_Orders extends Mage_Adminhtml_Block_Template
{
    protected function _toHtml()
    {
        Mage::helper('ordersync_bridge')->requireLibrary();
        $controller = new \OrderSync\Bridge\Admin\Controller(Mage::getModel('ordersync_bridge/adminAdapter'));
        $block = $this;
        return '<div class="content-header"><h3>' . $this->escapeHtml($this->__('Order Sync')) . '</h3></div>'
            . \OrderSync\Bridge\Admin\Html::grid($controller->grid(), array(
                'grid' => $this->getUrl('*/ordersync/index'),
                'action' => $this->getUrl('*/ordersync/act'),
                'order' => function (int $id) use ($block) {
                    return $block->getUrl('*/sales_order/view', array('order_id' => $id));
                },
            ), $this->getFormKey());
    }
}
