<?php
/**
 * The order page's "Sync" tab: each sync service's rows of this order (the
 * placement and its later events) with their state, attempts, last error
 * and remote id, and the Re-send, Un-park and Skip buttons.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Block\Adminhtml\Order\View\Tab;

use Magento\Backend\Block\Template;
use Magento\Backend\Block\Template\Context;
use Magento\Backend\Block\Widget\Tab\TabInterface;
use OrderSync\Bridge\Admin\Controller;
use OrderSync\Bridge\Admin\Html;
use OrderSync\MagentoBridge\Model\AdminAdapter;

class Sync extends Template implements TabInterface
{
    public function __construct(Context $context, private readonly AdminAdapter $admin, array $data = [])
    {
        parent::__construct($context, $data);
    }

    public function getTabLabel()
    {
        return __('Sync');
    }

    public function getTabTitle()
    {
        return __('Order Sync: this order at each sync service');
    }

    public function canShowTab()
    {
        return $this->_authorization->isAllowed('OrderSync_MagentoBridge::sync');
    }

    public function isHidden()
    {
        return false;
    }

    protected function _toHtml()
    {
        $entityId = (int) $this->getRequest()->getParam('order_id');
        return Html::tab(
            (new Controller($this->admin))->orderTab($entityId),
            $this->getUrl('ordersync/orders/act'),
            $this->getFormKey()
        );
    }
}
