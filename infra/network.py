"""The VPC: public subnets for NAT, private subnets for the functions, isolated ones for the data.

Why a NAT gateway and not VPC endpoints only: the functions post to browsers through the API
Gateway Management API of a *public* WebSocket API (``{api}.execute-api.{region}.amazonaws.com``).
That endpoint cannot be reached through an ``execute-api`` interface endpoint (those serve private
APIs only), and an ``execute-api`` endpoint with private DNS enabled would even break it: the public
hostname would then resolve to the endpoint, which refuses public APIs. So egress goes through NAT;
it also carries Secrets Manager and X-Ray traffic.

Redis and Postgres sit in isolated subnets without any route out; only the functions' security
groups may reach them.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import DeployConfig


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            # Two zones: what Multi-AZ RDS and an ElastiCache replica need, and what the NAT bill
            # (per gateway) can bear. natGateways=2 removes the NAT as a single-zone dependency.
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                # /20: room for one ENI per function security group and subnet, with headroom for
                # Hyperplane ENIs as the number of functions grows.
                ec2.SubnetConfiguration(
                    name="functions", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
            encryption_key=key,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
