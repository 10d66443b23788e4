"""One message to decisions: the filter chain, the run, the policy that decides."""
