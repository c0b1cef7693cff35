<?php
/**
 * Re-send, un-park or skip the selected orders (the grid's mass action and
 * the order tab's buttons), then back where the admin came from, with
 * order-sync's answer as the message.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Controller\Adminhtml\Orders;

use Magento\Backend\App\Action;
use Magento\Backend\App\Action\Context;
use Magento\Framework\App\Action\HttpPostActionInterface;
use OrderSync\Bridge\Admin\Controller;
use OrderSync\MagentoBridge\Model\AdminAdapter;

class Act extends Action implements HttpPostActionInterface
{
    public const ADMIN_RESOURCE = 'OrderSync_MagentoBridge::sync_actions';

    public function __construct(Context $context, private readonly AdminAdapter $admin)
    {
        parent::__construct($context);
    }

    public function execute()
    {
        (new Controller($this->admin))->act();
        $redirect = $this->resultRedirectFactory->create();
        return $redirect->setRefererOrBaseUrl();
    }
}
