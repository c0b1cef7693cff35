<?php
/**
 * The Order Sync grid: order-sync's rows per order and sync service, with
 * filters and the mass action.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Block\Adminhtml;

use Magento\Backend\Block\Template;
use Magento\Backend\Block\Template\Context;
use OrderSync\Bridge\Admin\Controller;
use OrderSync\Bridge\Admin\Html;
use OrderSync\MagentoBridge\Model\AdminAdapter;

class Orders extends Template
{
    public function __construct(Context $context, private readonly AdminAdapter $admin, array $data = [])
    {
        parent::__construct($context, $data);
    }

    protected function _toHtml()
    {
        return Html::grid((new Controller($this->admin))->grid(), [
            'grid' => $this->getUrl('ordersync/orders/index'),
            'action' => $this->getUrl('ordersync/orders/act'),
            'order' => fn (int $id) => $this->getUrl('sales/order/view', ['order_id' => $id]),
        ], $this->getFormKey());
    }
}
