-- ductape-jobs schema, version 24 (PostgreSQL): the sender that holds a webhook's deliveries. One process at a time
-- sends a webhook's deliveries (claim_deliveries), so that the events of one schedule reach it in the order of
-- their changes, whatever the number of workers; NULL (or a time past): no one holds it.
ALTER TABLE webhooks ADD COLUMN sending_until BIGINT;
