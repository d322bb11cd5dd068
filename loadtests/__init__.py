"""Load tests measured against raw Celery in the same run (issue 10); see loadtests/README.md."""
