# Nodes: SIP and RTP only from the carrier; nothing else in. No SSH: use
# SSM Session Manager.
resource "aws_security_group" "node" {
  name        = "${var.cluster}-node"
  description = "elastidial Asterisk nodes"
  vpc_id      = aws_vpc.main.id

  ingress {
    description = "SIP from the carrier"
    from_port   = 5060
    to_port     = 5060
    protocol    = "udp"
    cidr_blocks = var.carrier_cidrs
  }
  ingress {
    description = "RTP from the carrier (rtp.conf: 10000-20000)"
    from_port   = 10000
    to_port     = 20000
    protocol    = "udp"
    cidr_blocks = var.carrier_cidrs
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# Controller: XML-RPC and the API only from nodes (ops reach the dashboard
# through SSM port forwarding or a load balancer they add).
resource "aws_security_group" "controller" {
  name        = "${var.cluster}-controller"
  description = "elastidial controller"
  vpc_id      = aws_vpc.main.id

  ingress {
    description     = "XML-RPC from nodes"
    from_port       = var.controller_port
    to_port         = var.controller_port
    protocol        = "tcp"
    security_groups = [aws_security_group.node.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "memcached" {
  name        = "${var.cluster}-memcached"
  description = "memcached for the controller only"
  vpc_id      = aws_vpc.main.id

  ingress {
    from_port       = 11211
    to_port         = 11211
    protocol        = "tcp"
    security_groups = [aws_security_group.controller.id]
  }
}
