-- Loaded by the MariaDB container on first start (after 10-magento.sql, which
-- creates the demo shop's sales tables in magento_demo):
-- * order_sync: the ledger database is its own; of Magento it reads only the
--   tables capture reads (README "Security" lists the grants for Magento 1 too).
--   (With write_back.enabled it also needs INSERT on sales_order_status_history.)
-- * demo_shop: the demo order generator, standing in for Magento's checkout.
CREATE DATABASE IF NOT EXISTS order_sync CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'order_sync'@'%' IDENTIFIED BY 'order_sync';
GRANT SELECT ON magento_demo.sales_order TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.sales_order_item TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.sales_order_address TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.sales_order_payment TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.sales_order_status_history TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.store TO 'order_sync'@'%';
GRANT SELECT ON magento_demo.store_website TO 'order_sync'@'%';
GRANT ALL PRIVILEGES ON order_sync.* TO 'order_sync'@'%';
CREATE USER IF NOT EXISTS 'demo_shop'@'%' IDENTIFIED BY 'demo_shop';
GRANT ALL PRIVILEGES ON magento_demo.* TO 'demo_shop'@'%';
