"""Forecasting and evaluation: usage history in, recommendations with bounds out.

Pure computation (numpy, statsmodels, scikit-learn): nothing here talks to Kubernetes or
Prometheus or reads files.
"""
