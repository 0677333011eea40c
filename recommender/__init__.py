"""The recommender service: discovers opted-in workloads, reads their history from Prometheus,
runs the models and publishes recommendations."""
