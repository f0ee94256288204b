# The private, encrypted, versioned audio bucket.
resource "aws_s3_bucket" "audio" {
  bucket_prefix = "${var.cluster}-audio-"
}

resource "aws_s3_bucket_public_access_block" "audio" {
  bucket                  = aws_s3_bucket.audio.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audio" {
  bucket = aws_s3_bucket.audio.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "audio" {
  bucket = aws_s3_bucket.audio.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_elasticache_subnet_group" "memcached" {
  name       = "${var.cluster}-memcached"
  subnet_ids = aws_subnet.public[*].id
}

resource "aws_elasticache_cluster" "memcached" {
  cluster_id         = "${var.cluster}-mc"
  engine             = "memcached"
  node_type          = var.memcached_node_type
  num_cache_nodes    = 1
  port               = 11211
  subnet_group_name  = aws_elasticache_subnet_group.memcached.name
  security_group_ids = [aws_security_group.memcached.id]
}

resource "aws_cloudwatch_log_group" "controller" {
  name              = "/${var.cluster}/controller"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "nodes" {
  name              = "/${var.cluster}/nodes"
  retention_in_days = var.log_retention_days
}
