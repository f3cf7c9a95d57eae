"""The trigger learner as a service: evidence from the output topics -> trigger updates for every worker."""
