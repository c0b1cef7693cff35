<?php
/**
 * Every call the bridge makes into Magento goes through this interface, so
 * the same loop serves Magento 2 and Magento 1, and tests replace only this.
 */

declare(strict_types=1);

namespace OrderSync\Bridge;

interface Adapter
{
    /**
     * The order with this entity_id, loaded the way the shop's own code loads
     * one (Magento 2: OrderRepositoryInterface::get; Magento 1:
     * Mage::getModel('sales/order')->load), or null when there is none.
     */
    public function loadOrder(int $entityId): ?object;

    /**
     * An invoice, shipment or credit memo (`$kind`: `invoice`, `shipment`,
     * `creditmemo`) with this entity_id, loaded as the shop's code loads one
     * (Magento 2: its repository's get(); Magento 1:
     * Mage::getModel('sales/order_<kind>')->load), or null when there is none.
     */
    public function loadDocument(string $kind, int $entityId): ?object;

    /**
     * Dispatches a Magento event with these arguments, so every observer of
     * it runs. An observer's exception propagates: it means "not synced".
     *
     * @param array<string, mixed> $arguments
     */
    public function dispatch(string $event, array $arguments): void;

    /**
     * Magento's own database connection, as PDO (Magento 2:
     * ResourceConnection::getConnection()->getConnection(); Magento 1: the
     * `core_write` adapter's getConnection()): the bridge keeps what it
     * synced there ({@see SyncedLog}).
     */
    public function database(): \PDO;

    /** A table's name with Magento's table prefix. */
    public function tableName(string $name): string;

    /**
     * Logs through Magento's logger.
     *
     * @param array<string, mixed> $context
     */
    public function log(string $level, string $message, array $context = []): void;
}
