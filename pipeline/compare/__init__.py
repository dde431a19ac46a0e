"""``lensflow compare``: the article's levers side by side (variants x seeds through the pipeline)."""
