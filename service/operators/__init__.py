"""What operators use: the HTTP API on the Faust web server, the page, and the CLI's helpers.

A request to the API passes `auth` (its token's scope), then its route module (`lookup_routes`,
`trigger_routes`, `replay_routes`; `page_routes` serves the page without a token), which hands it
to `owners` to be answered by the worker that owns its key; `answers` reads the tables there.
Anything refused on the way is a `request_checks.Refused`, answered as `{"error": …}`. The probes
(`probes`) and `/metrics` (`metrics_route`) need no token.
"""
