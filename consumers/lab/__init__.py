"""The lab measured through the product: evaluations that run the `stream-guard` commands themselves."""
