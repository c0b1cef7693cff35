-- Loaded by the MariaDB container on first start (after 10-magento.sql):
-- the ledger database and what order-sync may do. It only reads Magento.
CREATE DATABASE IF NOT EXISTS order_sync CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'order_sync'@'%' IDENTIFIED BY 'order_sync';
GRANT SELECT ON magento.* TO 'order_sync'@'%';
GRANT ALL PRIVILEGES ON order_sync.* TO 'order_sync'@'%';
