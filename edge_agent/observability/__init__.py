"""Operating the agent: metrics under Lookout for Vision's names, health, dashboard, HTTP detection.

Device-side (imported by `edge-agent serve` when asked for): everything here is off unless a
`serve` flag turns it on, except the gRPC health service, which costs nothing per detection.
See docs/observability.md.
"""
