"""The local AWS lab: moto as the AWS API, podman containers as EC2 instances, real Redis,
PostgreSQL and HAProxy behind the ElastiCache, database and ALB endpoints. See lab/README.md."""
