"""Redis (ElastiCache) for connections and presence, Postgres (RDS behind RDS Proxy) for the rest.

The secrets the functions need are generated here and never leave Secrets Manager: the functions
get ARNs, the templates only dynamic references.
"""

from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig

# Pinned minor: RDS upgrades minors in place, and a template that names only "16" is flagged by
# cfn-lint and hides which version runs. Automatic minor upgrades are off for the same reason: an
# upgrade behind CloudFormation's back makes the next deploy try to "downgrade". Bump it here.
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_16_13
REDIS_ENGINE_VERSION = "7.1"
REDIS_PORT = 6379
POSTGRES_PORT = 5432
DB_NAME = "collab"

ISOLATED = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)


class Data(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, key: kms.IKey, config: DeployConfig
    ) -> None:
        super().__init__(scope, construct_id)
        # Every secret is encrypted with the stack's key (infra/encryption.py).
        self._key = key
        self.jwt_secret = secretsmanager.Secret(
            self,
            "JwtSecret",
            description="Collab: HS256 key for access tokens and WebSocket tickets",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        self._redis(vpc, config)
        self._postgres(vpc, config)

    # Redis -----------------------------------------------------------------------------------
    def _redis(self, vpc: ec2.IVpc, config: DeployConfig) -> None:
        # ElastiCache AUTH tokens are 16-128 printable characters without @ " /: alphanumerics only.
        self.redis_auth_secret = secretsmanager.Secret(
            self,
            "RedisAuthToken",
            description="Collab: ElastiCache AUTH token (plain string)",
            encryption_key=self._key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        self.redis_security_group = ec2.SecurityGroup(
            self,
            "RedisSecurityGroup",
            vpc=vpc,
            description="ElastiCache: reachable from the functions that use Redis only",
            allow_all_outbound=False,
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description="Collab Redis: isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        replicas = config.redis_replicas
        self.redis_node_count = 1 + replicas
        # noeviction: when Redis is full, writes fail (answered as contract errors) instead of
        # ElastiCache's default volatile-lru silently evicting exactly the keys with an expiry -
        # used tickets, rate windows, idempotency records, connections. The memory alarm
        # (observability.py, 80%) warns well before that.
        parameters = elasticache.CfnParameterGroup(
            self,
            "RedisParameters",
            cache_parameter_group_family="redis7",
            description="Collab Redis: noeviction",
            properties={"maxmemory-policy": "noeviction"},
        )
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description="Collab connections, presence, recent events, rate limits",
            engine="redis",
            engine_version=REDIS_ENGINE_VERSION,
            cache_node_type=config.redis_node_type,
            num_cache_clusters=self.redis_node_count,
            automatic_failover_enabled=replicas > 0,
            multi_az_enabled=replicas > 0,
            port=REDIS_PORT,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            auth_token=self.redis_auth_secret.secret_value.unsafe_unwrap(),
            cache_subnet_group_name=subnet_group.ref,
            cache_parameter_group_name=parameters.ref,
            security_group_ids=[self.redis_security_group.security_group_id],
            auto_minor_version_upgrade=True,
            # Connection and presence state rebuilds itself within a heartbeat interval; one daily
            # snapshot only shortens recovery of the last-100-events buffer.
            snapshot_retention_limit=1,
        )
        self.redis_url = Fn.join(
            "",
            [
                "rediss://",
                self.redis.attr_primary_end_point_address,
                ":",
                self.redis.attr_primary_end_point_port,
            ],
        )

    # Postgres ---------------------------------------------------------------------------------
    def _postgres(self, vpc: ec2.IVpc, config: DeployConfig) -> None:
        self.db_security_group = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=vpc,
            description="RDS Postgres: reachable from the RDS Proxy only",
            allow_all_outbound=False,
        )
        self.proxy_security_group = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=vpc,
            description="RDS Proxy: reachable from the functions that use Postgres",
            allow_all_outbound=False,
        )
        self.database = rds.DatabaseInstance(
            self,
            "Postgres",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            instance_type=ec2.InstanceType(config.db_instance_class),
            vpc=vpc,
            vpc_subnets=ISOLATED,
            security_groups=[self.db_security_group],
            port=POSTGRES_PORT,
            database_name=DB_NAME,
            credentials=rds.Credentials.from_generated_secret("collab_admin", encryption_key=self._key),
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=config.db_allocated_storage_gb,
            max_allocated_storage=config.db_max_allocated_storage_gb,
            multi_az=config.db_multi_az,
            backup_retention=Duration.days(config.db_backup_days),
            deletion_protection=config.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT,
            auto_minor_version_upgrade=False,
            publicly_accessible=False,
            copy_tags_to_snapshot=True,
        )
        assert self.database.secret is not None
        # Least privilege: the functions log in as collab_runtime (DML on the app's tables, with
        # statement and lock timeouts), migrations as collab_migrator (owns the schema); both
        # roles are created by migration 0002, run by the migrate function as the master user,
        # which also sets their passwords from these secrets. The proxy logs each in with its own.
        self.admin_secret: secretsmanager.ISecret = self.database.secret
        self.db_secret: secretsmanager.ISecret = rds.DatabaseSecret(
            self, "RuntimeSecret", username="collab_runtime", encryption_key=self._key
        )
        self.migrator_secret: secretsmanager.ISecret = rds.DatabaseSecret(
            self, "MigratorSecret", username="collab_migrator", encryption_key=self._key
        )
        self.proxy = rds.DatabaseProxy(
            self,
            "Proxy",
            proxy_target=rds.ProxyTarget.from_instance(self.database),
            secrets=[self.admin_secret, self.db_secret, self.migrator_secret],
            vpc=vpc,
            vpc_subnets=ISOLATED,
            security_groups=[self.proxy_security_group],
            require_tls=True,
            # The default name is the construct id ("Proxy"): unique per account and region only
            # if it carries the stack's name.
            db_proxy_name=f"{Stack.of(self).stack_name.lower()}-postgres-proxy",
            # Lambda containers come and go; the proxy keeps the database's connection count flat.
            max_connections_percent=90,
            idle_client_timeout=Duration.minutes(30),
            borrow_timeout=Duration.seconds(10),
            debug_logging=False,
        )
        self.database.connections.allow_from(
            self.proxy_security_group, ec2.Port.tcp(POSTGRES_PORT), "RDS Proxy to Postgres"
        )
        self.db_host = self.proxy.endpoint

    # Access -----------------------------------------------------------------------------------
    def allow_redis_from(self, peer: ec2.ISecurityGroup, who: str) -> None:
        self.redis_security_group.add_ingress_rule(peer, ec2.Port.tcp(REDIS_PORT), f"Redis from {who}")

    def allow_database_from(self, peer: ec2.ISecurityGroup, who: str) -> None:
        self.proxy_security_group.add_ingress_rule(peer, ec2.Port.tcp(POSTGRES_PORT), f"Postgres from {who}")
