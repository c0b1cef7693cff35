<?php
/**
 * Sales → Order Sync: the grid of each order's sync status per sync service.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Controller\Adminhtml\Orders;

use Magento\Backend\App\Action;
use Magento\Backend\App\Action\Context;
use Magento\Framework\App\Action\HttpGetActionInterface;
use Magento\Framework\View\Result\PageFactory;

class Index extends Action implements HttpGetActionInterface
{
    public const ADMIN_RESOURCE = 'OrderSync_MagentoBridge::sync';

    public function __construct(Context $context, private readonly PageFactory $pages)
    {
        parent::__construct($context);
    }

    public function execute()
    {
        $page = $this->pages->create();
        $page->setActiveMenu('OrderSync_MagentoBridge::sync');
        $page->getConfig()->getTitle()->prepend(__('Order Sync'));
        return $page;
    }
}
