"""The engine every sync kind runs on: the document stream (rules, diff, fetch, extract, write),
the on-disk snapshot of what the index holds, the reconciling stages (full listing, changes,
ids, stale deletes) and the progress they count."""
