-- Shipment lines whose units do not have exactly one ship movement (core.stock_ledger kind 'ship', the
-- shipment as source document) and a pick movement for each unit on the tasks that shipped in it.
-- No rows = every shipped unit was picked and shipped once.
-- severity: error
WITH shipped AS (
    SELECT shipment_id, warehouse_id, sku, sum(quantity) AS shipped FROM core.shipment_lines GROUP BY ALL
), ship_moves AS (
    SELECT source_doc AS shipment_id, warehouse_id, sku, -sum(qty_delta) AS ship_moved, count(*) AS ship_rows
    FROM core.stock_ledger WHERE kind = 'ship' GROUP BY ALL
), picks AS (
    SELECT t.shipment_id, t.warehouse_id, t.sku, -sum(m.qty_delta) AS picked
    FROM core.pick_tasks AS t JOIN core.stock_ledger AS m ON m.kind = 'pick' AND m.source_doc = t.task_id
    WHERE t.shipment_id IS NOT NULL GROUP BY ALL
)
SELECT s.shipment_id, s.warehouse_id, s.sku, s.shipped, coalesce(m.ship_moved, 0) AS ship_moved,
       coalesce(p.picked, 0) AS picked
FROM shipped AS s
LEFT JOIN ship_moves AS m USING (shipment_id, warehouse_id, sku)
LEFT JOIN picks AS p USING (shipment_id, warehouse_id, sku)
WHERE coalesce(m.ship_moved, 0) <> s.shipped OR coalesce(p.picked, 0) <> s.shipped
ORDER BY 1, 2, 3
