"""Celery entry points: ``celery -A workers.celery_app worker|beat|flower``."""
