#!/usr/bin/env python3
"""Gives a fresh moto server (python3 -m moto.server) real credentials: creates an IAM user allowed every
S3 action, prints its access key and secret key on one line, then turns authentication on, so that from now
on the server checks every request's SigV4 signature and rejects unknown keys."""
import json
import sys
import urllib.request

import boto3

endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="kaleem-backup")
iam.put_user_policy(UserName="kaleem-backup", PolicyName="s3-all", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}))
key = iam.create_access_key(UserName="kaleem-backup")["AccessKey"]
urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                              headers={"Content-Type": "text/plain"})).read()
print(key["AccessKeyId"], key["SecretAccessKey"])
