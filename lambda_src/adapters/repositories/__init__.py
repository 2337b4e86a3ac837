"""One repository per table. Each owns its table's item shape; multi-table writes are transactions
assembled from the repositories' own transaction items."""
