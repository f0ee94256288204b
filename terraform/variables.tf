variable "region" {
  description = "AWS region of the whole deployment."
  type        = string
  default     = "us-east-1"
}

variable "cluster" {
  description = "Cluster name: the elastidial:cluster tag on every node, which the controller's IAM policy is scoped to."
  type        = string
  default     = "elastidial"
}

variable "vpc_cidr" {
  description = "Address range of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "azs" {
  description = "Availability zones for node subnets (at least two)."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
}

variable "carrier_cidrs" {
  description = "Addresses of the SIP carrier: the only sources allowed to reach nodes' SIP and RTP ports."
  type        = list(string)
}

variable "node_ami" {
  description = "AMI baked from ami-images/ (Asterisk and the node-agent)."
  type        = string
}

variable "node_instance_type" {
  description = "Instance type of nodes (about 100 calls each)."
  type        = string
  default     = "c6i.large"
}

variable "controller_instance_type" {
  description = "Instance type of the controller host."
  type        = string
  default     = "t3.medium"
}

variable "controller_ami" {
  description = "AMI of the controller host: any current Linux with the controller binary at /usr/local/bin/controller (user data writes its configuration and systemd unit)."
  type        = string
}

variable "controller_port" {
  description = "Port of the controller's HTTP server (REST API, dashboard, XML-RPC)."
  type        = number
  default     = 8080
}

variable "memcached_node_type" {
  description = "ElastiCache memcached node type."
  type        = string
  default     = "cache.t4g.micro"
}

variable "log_retention_days" {
  description = "How long CloudWatch keeps controller and node logs."
  type        = number
  default     = 30
}

variable "controller_db" {
  description = "The controller's store: an SQLite path on the host (the default) or a postgres:// URL (e.g. an RDS instance you add)."
  type        = string
  default     = "/var/lib/elastidial/elastidial.db"
}
