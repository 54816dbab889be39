"""One job's life: `setup` resolves what it syncs with once, `stages` are the steps of its sync
with the state they pass on, `run` is the lifecycle (claim, watch, stage order, final write),
`outcome` decides its final status."""
