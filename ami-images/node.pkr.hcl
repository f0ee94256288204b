# The elastidial node image: Debian 12, Asterisk built from a pinned
# release with only the modules an outbound IVR dialer needs, the
# node-agent, and the configuration the agent expects. Nothing secret is
# baked in: first-boot.sh renders the rest from instance metadata and user
# data. Build the agent first: GOOS=linux go build -o build/node-agent ./cmd/node-agent

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type    = string
  default = "c6i.large"
}

variable "asterisk_version" {
  type    = string
  default = "22.10.1"
}

variable "pjproject_version" {
  type        = string
  default     = "2.17"
  description = "The pjproject release the Asterisk version bundles (third-party/pjproject in its source)."
}

variable "pjproject_sha256" {
  type        = string
  default     = "04b2eb1f0f01aa0ad1945b167171843448a51aa6b7c3e806496d434f13a112b7"
  description = "SHA-256 of pjproject-<version>.tar.bz2 as Asterisk's third-party mirror serves it."
}

variable "asterisk_sha256" {
  type        = string
  description = "SHA-256 of asterisk-<version>.tar.gz from downloads.asterisk.org; the build refuses any other tarball."
}

variable "agent_binary" {
  type    = string
  default = "../build/node-agent"
}

source "amazon-ebs" "node" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "admin"
  ami_name      = "elastidial-node-${var.asterisk_version}-{{timestamp}}"
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"] # Debian
    most_recent = true
  }
  tags = {
    Name              = "elastidial-node"
    "asterisk:version" = var.asterisk_version
  }
}

build {
  sources = ["source.amazon-ebs.node"]

  provisioner "file" {
    source      = var.agent_binary
    destination = "/tmp/node-agent"
  }
  provisioner "file" {
    source      = "asterisk"
    destination = "/tmp/asterisk-conf"
  }
  provisioner "file" {
    source      = "systemd"
    destination = "/tmp/systemd"
  }
  provisioner "file" {
    source      = "scripts/first-boot.sh"
    destination = "/tmp/first-boot.sh"
  }
  provisioner "file" {
    source      = "scripts/build-asterisk.sh"
    destination = "/tmp/build-asterisk.sh"
  }
  provisioner "file" {
    source      = "scripts/render-asterisk-conf.sh"
    destination = "/tmp/render-asterisk-conf.sh"
  }
  provisioner "shell" {
    script           = "scripts/provision.sh"
    execute_command  = "sudo -E sh -c '{{ .Vars }} {{ .Path }}'"
    environment_vars = ["ASTERISK_VERSION=${var.asterisk_version}", "ASTERISK_SHA256=${var.asterisk_sha256}",
    "PJPROJECT_VERSION=${var.pjproject_version}", "PJPROJECT_SHA256=${var.pjproject_sha256}"]
  }
}
