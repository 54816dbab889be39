"""All Elasticsearch code: the client, index creation, the index snapshot, the bulk writer."""
