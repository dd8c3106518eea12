"""The worker's destinations: one adapter per protocol, kept open per integration by `pool.py`.

`base.py` holds what every adapter shares (the job, the interface, file-name checks), `options.py`
each type's integration options as a typed model, `failures.py` what any exception means for
retries, `slots.py` how many deliveries run at once.

Adding a destination type, in this order:

1. The contract: its `settings` object under `$defs` and an `if type … then settings` entry in
   `schemas/integration.schema.json` (secret names end in `-secure` or `-secret`, so `integrations
   put` encrypts them), an example in `schemas/examples/`, and the name in `IntegrationType`
   (`service/contracts.py`).
2. Its options: a model in `options.py` naming the schema's fields (defaults the schema declares are
   read from it, not repeated).
3. The adapter: `destinations/<type>.py`, a `Destination[<its options>]` that sets `options_model`,
   checks every host or URL with the network policy before connecting (`service/netpolicy.py`;
   connections made through `service/netclients.py` are judged again where they are made) and writes
   files only under names from `checked_name` or `target_path`. Its client library is imported only
   in that module.
4. The pool: a `case` in `DestinationPool._create` (`pool.py`), importing the adapter there so that
   a worker that never uses the type never loads its library (`tests/unit/test_fast_start.py`).
5. Failures: the library's exceptions in `failures.py` (transient or permanent, with a text that
   keeps codes and types, never remote text or secrets), and its chatty loggers in
   `service/logs.py` (`QUIET_LOGGERS`).
6. Rules the schema cannot say: `integration_reasons` in `service/validation.py` (as for e-mail
   addresses and https hooks).
7. Notifications: whether a success e-mails the success list (`service/planning/notifications.py`;
   e-mail integrations do not).

Then a test against a real (local) server in `tests/integration/test_destinations.py`, the type in
the security tests' refused-connection cases (`tests/security/`), and a line in the README.
"""
