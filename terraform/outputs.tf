output "controller_instance_id" {
  description = "Reach the controller with SSM: aws ssm start-session --target <id>."
  value       = aws_instance.controller.id
}

output "controller_private_url" {
  description = "URL nodes use (set it as -public-url on the controller)."
  value       = "http://${aws_instance.controller.private_ip}:${var.controller_port}"
}

output "audio_bucket" {
  description = "The audio bucket; the controller keeps the library under audio/."
  value       = aws_s3_bucket.audio.bucket
}

output "node_launch_template_id" {
  description = "Launch template the scaler launches nodes from."
  value       = aws_launch_template.node.id
}

output "node_subnets" {
  description = "Public node subnets, one per AZ."
  value       = aws_subnet.public[*].id
}

output "memcached_endpoint" {
  description = "memcached for the controller."
  value       = aws_elasticache_cluster.memcached.cluster_address
}
