"""The stream layer: Faust agents over the service's topics, and what they are built on.

- `stages/`: the agents, one module per stage of the data flow: `ingest` (orders, triggers,
  integrations), `join` (recipes and order links), `deliver`, `retry`, `notify`, `order_view` (the
  operators' view and each tenant's recent list), and `outcomes` (where a finished attempt leads).
- `machinery/`: what every stage uses and none owns: `entrance` (validate, handle where placed or
  re-publish), `barrier` and `row_cache` (sends, row changes and acknowledgements settled together),
  `concurrency`, `ordered_acks` and `sequencing` (many records at once, acknowledged in order, one
  key's work in turn), `partitions` (where a record sits), `publish`, `rejects` (to invalid-events),
  `runtime` (the delivery clients).
- `state/`: what the stages keep and read besides Faust's tables: `live_views` (every worker's copy
  of the integrations and the order index, over `topic_views`), `waiting_links` (links waiting for
  their recipe), `waiting_room` (where retries wait for their due time).
"""
