"""Fair ordering: signed local order reports, ordering policies, and the block payload."""
