# Nodes are launched by the controller from this template; the controller
# adds the user data (controller URL, cluster secret, trunk) per launch.
resource "aws_launch_template" "node" {
  name_prefix   = "${var.cluster}-node-"
  image_id      = var.node_ami
  instance_type = var.node_instance_type
  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }
  vpc_security_group_ids = [aws_security_group.node.id]
  metadata_options {
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
    http_endpoint               = "enabled"
  }
  tag_specifications {
    resource_type = "instance"
    tags = {
      "elastidial:cluster" = var.cluster
      "elastidial:role"    = "node"
    }
  }
}

resource "aws_instance" "controller" {
  ami                    = var.controller_ami
  instance_type          = var.controller_instance_type
  subnet_id              = aws_subnet.public[0].id
  vpc_security_group_ids = [aws_security_group.controller.id]
  iam_instance_profile   = aws_iam_instance_profile.controller.name
  metadata_options {
    http_tokens = "required"
  }
  user_data = <<-EOT
    #!/bin/sh
    set -eu
    # The env file may hold the trunk password: nothing written here is
    # readable by other users. The controller runs as its own user.
    umask 077
    id elastidial >/dev/null 2>&1 || useradd --system --home /var/lib/elastidial --shell /usr/sbin/nologin elastidial
    mkdir -p /etc/elastidial /var/lib/elastidial
    chown elastidial:elastidial /var/lib/elastidial
    cat > /etc/systemd/system/elastidial-controller.service <<EOF1
    [Unit]
    Description=elastidial controller
    After=network-online.target
    [Service]
    EnvironmentFile=/etc/elastidial/controller.env
    WorkingDirectory=/var/lib/elastidial
    ExecStart=/usr/local/bin/controller serve
    User=elastidial
    Group=elastidial
    UMask=0077
    NoNewPrivileges=yes
    CapabilityBoundingSet=
    ProtectSystem=strict
    ReadWritePaths=/var/lib/elastidial
    ProtectHome=yes
    PrivateTmp=yes
    PrivateDevices=yes
    Restart=always
    [Install]
    WantedBy=multi-user.target
    EOF1
    cat > /etc/elastidial/controller.env <<EOF2
    ELASTIDIAL_CLOUD=ec2
    ELASTIDIAL_CLUSTER=${var.cluster}
    ELASTIDIAL_EC2_REGION=${var.region}
    ELASTIDIAL_EC2_LAUNCH_TEMPLATE=${aws_launch_template.node.id}
    ELASTIDIAL_EC2_SUBNETS=${join(",", aws_subnet.public[*].id)}
    ELASTIDIAL_AUDIO=s3://${aws_s3_bucket.audio.bucket}/audio
    ELASTIDIAL_S3_REGION=${var.region}
    ELASTIDIAL_MEMCACHED=${aws_elasticache_cluster.memcached.cluster_address}:11211
    ELASTIDIAL_LISTEN=:${var.controller_port}
    ELASTIDIAL_DB=${var.controller_db}
    EOF2
    TOKEN=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")
    IP=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)
    echo "ELASTIDIAL_PUBLIC_URL=http://$IP:${var.controller_port}" >> /etc/elastidial/controller.env
    systemctl daemon-reload
    systemctl enable --now elastidial-controller
  EOT
  tags      = { Name = "${var.cluster}-controller" }
}
