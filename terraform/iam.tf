# Least privilege. The actions below are checked by terraform_test.go
# against the SDK calls the controller's code makes, so the two cannot
# drift: EC2 calls come from controller/ec2cloud's API interface, S3 calls
# from storage/s3store's.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "controller" {
  # Launch only instances that carry the cluster tag...
  statement {
    sid       = "LaunchTaggedNodes"
    actions   = ["ec2:RunInstances"]
    resources = ["arn:aws:ec2:${var.region}:*:instance/*", "arn:aws:ec2:${var.region}:*:volume/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/elastidial:cluster"
      values   = [var.cluster]
    }
  }
  # ...from the node launch template, into our subnets and groups.
  statement {
    sid     = "LaunchFromTemplate"
    actions = ["ec2:RunInstances"]
    resources = [
      "arn:aws:ec2:${var.region}::image/*",
      "arn:aws:ec2:${var.region}:*:subnet/*",
      "arn:aws:ec2:${var.region}:*:network-interface/*",
      "arn:aws:ec2:${var.region}:*:security-group/*",
      aws_launch_template.node.arn,
    ]
  }
  # Tags only as part of the launch.
  statement {
    sid       = "TagAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:aws:ec2:${var.region}:*:instance/*", "arn:aws:ec2:${var.region}:*:volume/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }
  statement {
    sid       = "TerminateStopStartOwnNodes"
    actions   = ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"]
    resources = ["arn:aws:ec2:${var.region}:*:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/elastidial:cluster"
      values   = [var.cluster]
    }
  }
  statement {
    sid       = "Describe"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets"]
    resources = ["*"]
  }
  statement {
    sid       = "PassNodeRoleOnly"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.node.arn]
  }
  statement {
    sid       = "AudioObjects"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.audio.arn}/audio/*", "${aws_s3_bucket.audio.arn}/audio-speech/*"]
  }
  statement {
    sid       = "AudioListing"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.audio.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["audio/*", "audio-speech/*"]
    }
  }
  # Flows' say states through Amazon Polly (controller -tts polly); the
  # renderings are kept under audio-speech/ (-speech's default beside
  # -audio s3://bucket/audio).
  statement {
    sid       = "Speech"
    actions   = ["polly:SynthesizeSpeech"]
    resources = ["*"]
  }
}

# Nodes fetch audio through presigned URLs; where the instance role is used
# instead, it may read the audio prefix and nothing else.
data "aws_iam_policy_document" "node" {
  statement {
    sid       = "ReadAudio"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audio.arn}/audio/*"]
  }
}

resource "aws_iam_role" "controller" {
  name               = "${var.cluster}-controller"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy" "controller" {
  name   = "scaler"
  role   = aws_iam_role.controller.id
  policy = data.aws_iam_policy_document.controller.json
}

resource "aws_iam_role_policy_attachment" "controller_ssm" {
  role       = aws_iam_role.controller.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "controller" {
  name = "${var.cluster}-controller"
  role = aws_iam_role.controller.name
}

resource "aws_iam_role" "node" {
  name               = "${var.cluster}-node"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy" "node" {
  name   = "audio"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "node_ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.cluster}-node"
  role = aws_iam_role.node.name
}
