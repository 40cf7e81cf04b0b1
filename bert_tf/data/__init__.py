"""Data: fetching pinned real data, pre-training instances, task readers."""
