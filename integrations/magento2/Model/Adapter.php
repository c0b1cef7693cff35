<?php
/**
 * The bridge's only calls into Magento 2: load an order (and an invoice,
 * shipment or credit memo) through its repository, dispatch an event through
 * the event manager, Magento's database connection, log through Magento's
 * logger.
 */

declare(strict_types=1);

namespace OrderSync\MagentoBridge\Model;

use Magento\Framework\App\ResourceConnection;
use Magento\Framework\Event\ManagerInterface;
use Magento\Framework\Exception\NoSuchEntityException;
use Magento\Sales\Api\CreditmemoRepositoryInterface;
use Magento\Sales\Api\InvoiceRepositoryInterface;
use Magento\Sales\Api\OrderRepositoryInterface;
use Magento\Sales\Api\ShipmentRepositoryInterface;
use OrderSync\Bridge\Adapter as BridgeAdapter;
use Psr\Log\LoggerInterface;

class Adapter implements BridgeAdapter
{
    public function __construct(
        private readonly OrderRepositoryInterface $orders,
        private readonly InvoiceRepositoryInterface $invoices,
        private readonly ShipmentRepositoryInterface $shipments,
        private readonly CreditmemoRepositoryInterface $creditmemos,
        private readonly ManagerInterface $events,
        private readonly LoggerInterface $logger,
        private readonly ResourceConnection $resource,
    ) {
    }

    public function loadOrder(int $entityId): ?object
    {
        try {
            return $this->orders->get($entityId);
        } catch (NoSuchEntityException) {
            return null;
        }
    }

    public function loadDocument(string $kind, int $entityId): ?object
    {
        $repository = match ($kind) {
            'invoice' => $this->invoices,
            'shipment' => $this->shipments,
            'creditmemo' => $this->creditmemos,
            default => null,
        };
        if ($repository === null) {
            return null;
        }
        try {
            return $repository->get($entityId);
        } catch (NoSuchEntityException) {
            return null;
        }
    }

    public function dispatch(string $event, array $arguments): void
    {
        $this->events->dispatch($event, $arguments);
    }

    public function database(): \PDO
    {
        // Magento's PDO adapter wraps a real PDO connection.
        return $this->resource->getConnection()->getConnection();
    }

    public function tableName(string $name): string
    {
        return $this->resource->getTableName($name);
    }

    public function log(string $level, string $message, array $context = []): void
    {
        $this->logger->log($level, $message, $context);
    }
}
