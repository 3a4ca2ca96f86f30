"""What operators see: counters, health, alerts, Prometheus, the monitoring routes and dashboard."""
