"""Administration: topics, partitions, records, configs, cluster description, producer ids,
leader-epoch lookups, log directories, SASL, client quotas, SCRAM credentials and ACLs."""

TEXT = """
api 19 CreateTopics 0-7 flex 5
request
  topics []
    name string
    num_partitions int32
    replication_factor int16
    assignments []
      partition_index int32
      broker_ids []int32
    configs []
      name string
      value string null0+
  timeout_ms int32 =60000
  validate_only bool v1+
response
  throttle_time_ms int32 v2+
  topics []
    name string
    topic_id uuid v7+
    error_code int16
    error_message string v1+ null0+
    topic_config_error_code int16 v5+ tag0
    num_partitions int32 v5+ =-1
    replication_factor int16 v5+ =-1
    configs [] v5+ null5+
      name string
      value string null5+
      read_only bool
      config_source int8 =-1
      is_sensitive bool

api 20 DeleteTopics 0-6 flex 4
request
  topics [] v6+
    name string null6+ =null
    topic_id uuid
  topic_names []string v0-5
  timeout_ms int32
response
  throttle_time_ms int32 v1+
  responses []
    name string null6+
    topic_id uuid v6+
    error_code int16
    error_message string v5+ null5+ =null

api 21 DeleteRecords 0-2 flex 2
request
  topics []
    name string
    partitions []
      partition_index int32
      offset int64
  timeout_ms int32
response
  throttle_time_ms int32
  topics []
    name string
    partitions []
      partition_index int32
      low_watermark int64
      error_code int16

api 22 InitProducerId 0-4 flex 2
request
  transactional_id string null0+
  transaction_timeout_ms int32
  producer_id int64 v3+ =-1
  producer_epoch int16 v3+ =-1
response
  throttle_time_ms int32
  error_code int16
  producer_id int64 =-1
  producer_epoch int16

api 23 OffsetForLeaderEpoch 0-4 flex 4
request
  replica_id int32 v3+ =-2
  topics []
    topic string
    partitions []
      partition int32
      current_leader_epoch int32 v2+ =-1
      leader_epoch int32
response
  throttle_time_ms int32 v2+
  topics []
    topic string
    partitions []
      error_code int16
      partition int32
      leader_epoch int32 v1+ =-1
      end_offset int64 =-1

api 32 DescribeConfigs 0-4 flex 4
request
  resources []
    resource_type int8
    resource_name string
    configuration_keys []string null0+
  include_synonyms bool v1+
  include_documentation bool v3+
response
  throttle_time_ms int32
  results []
    error_code int16
    error_message string null0+
    resource_type int8
    resource_name string
    configs []
      name string
      value string null0+
      read_only bool
      config_source int8 v1+ =-1
      is_default bool v0
      is_sensitive bool
      synonyms [] v1+
        name string
        value string null0+
        source int8
      config_type int8 v3+
      documentation string v3+ null0+

api 33 AlterConfigs 0-2 flex 2
request
  resources []
    resource_type int8
    resource_name string
    configs []
      name string
      value string null0+
  validate_only bool
response
  throttle_time_ms int32
  responses []
    error_code int16
    error_message string null0+
    resource_type int8
    resource_name string

api 37 CreatePartitions 0-3 flex 2
request
  topics []
    name string
    count int32
    assignments [] null0+
      broker_ids []int32
  timeout_ms int32
  validate_only bool
response
  throttle_time_ms int32
  results []
    name string
    error_code int16
    error_message string null0+ =null

api 44 IncrementalAlterConfigs 0-1 flex 1
request
  resources []
    resource_type int8
    resource_name string
    configs []
      name string
      config_operation int8
      value string null0+
  validate_only bool
response
  throttle_time_ms int32
  responses []
    error_code int16
    error_message string null0+
    resource_type int8
    resource_name string

api 60 DescribeCluster 0-2 flex 0
request
  include_cluster_authorized_operations bool
  endpoint_type int8 v1+ =1
  include_fenced_brokers bool v2+
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+ =null
  endpoint_type int8 v1+ =1
  cluster_id string
  controller_id int32 =-1
  brokers []
    broker_id int32
    host string
    port int32
    rack string null0+ =null
    is_fenced bool v2+
  cluster_authorized_operations int32 =-2147483648

api 17 SaslHandshake 0-1 flex none
request
  mechanism string
response
  error_code int16
  mechanisms []string

api 36 SaslAuthenticate 0-2 flex 2
request
  auth_bytes bytes
response
  error_code int16
  error_message string null0+
  auth_bytes bytes
  session_lifetime_ms int64 v1+

api 48 DescribeClientQuotas 0-1 flex 1
request
  components []
    entity_type string
    match_type int8
    match string null0+
  strict bool
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+
  entries [] null0+
    entity []
      entity_type string
      entity_name string null0+
    values []
      key string
      value float64

api 49 AlterClientQuotas 0-1 flex 1
request
  entries []
    entity []
      entity_type string
      entity_name string null0+
    ops []
      key string
      value float64
      remove bool
  validate_only bool
response
  throttle_time_ms int32
  entries []
    error_code int16
    error_message string null0+
    entity []
      entity_type string
      entity_name string null0+

api 50 DescribeUserScramCredentials 0-0 flex 0
request
  users [] null0+
    name string
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+
  results []
    user string
    error_code int16
    error_message string null0+
    credential_infos []
      mechanism int8
      iterations int32

api 51 AlterUserScramCredentials 0-0 flex 0
request
  deletions []
    name string
    mechanism int8
  upsertions []
    name string
    mechanism int8
    iterations int32
    salt bytes
    salted_password bytes
response
  throttle_time_ms int32
  results []
    user string
    error_code int16
    error_message string null0+

api 34 AlterReplicaLogDirs 1-2 flex 2
request
  dirs []
    path string
    topics []
      name string
      partitions []int32
response
  throttle_time_ms int32
  results []
    topic_name string
    partitions []
      partition_index int32
      error_code int16

api 35 DescribeLogDirs 1-4 flex 2
request
  topics [] null0+
    topic string
    partitions []int32
response
  throttle_time_ms int32
  error_code int16 v3+
  results []
    error_code int16
    log_dir string
    topics []
      name string
      partitions []
        partition_index int32
        partition_size int64
        offset_lag int64
        is_future_key bool
    total_bytes int64 v4+ =-1
    usable_bytes int64 v4+ =-1
"""

# Cluster administration over the controller: leader elections and KIP-455 reassignments.
TEXT += """
api 43 ElectLeaders 0-2 flex 2
request
  election_type int8 v1+
  topic_partitions [] null0+
    topic string
    partitions []int32
  timeout_ms int32 =60000
response
  throttle_time_ms int32
  error_code int16 v1+
  replica_election_results []
    topic string
    partition_result []
      partition_id int32
      error_code int16
      error_message string null0+

api 45 AlterPartitionReassignments 0-1 flex 0
request
  timeout_ms int32 =60000
  allow_replication_factor_change bool v1+ =true
  topics []
    name string
    partitions []
      partition_index int32
      replicas []int32 null0+ =null
response
  throttle_time_ms int32
  allow_replication_factor_change bool v1+ =true
  error_code int16
  error_message string null0+
  responses []
    name string
    partitions []
      partition_index int32
      error_code int16
      error_message string null0+

api 46 ListPartitionReassignments 0-0 flex 0
request
  timeout_ms int32 =60000
  topics [] null0+ =null
    name string
    partition_indexes []int32
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+
  topics []
    name string
    partitions []
      partition_index int32
      replicas []int32
      adding_replicas []int32
      removing_replicas []int32
api 29 DescribeAcls 0-3 flex 2
request
  resource_type_filter int8
  resource_name_filter string null0+
  pattern_type_filter int8 v1+ =3
  principal_filter string null0+
  host_filter string null0+
  operation int8
  permission_type int8
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+
  resources []
    resource_type int8
    resource_name string
    pattern_type int8 v1+ =3
    acls []
      principal string
      host string
      operation int8
      permission_type int8

api 30 CreateAcls 0-3 flex 2
request
  creations []
    resource_type int8
    resource_name string
    resource_pattern_type int8 v1+ =3
    principal string
    host string
    operation int8
    permission_type int8
response
  throttle_time_ms int32
  results []
    error_code int16
    error_message string null0+

api 31 DeleteAcls 0-3 flex 2
request
  filters []
    resource_type_filter int8
    resource_name_filter string null0+
    pattern_type_filter int8 v1+ =3
    principal_filter string null0+
    host_filter string null0+
    operation int8
    permission_type int8
response
  throttle_time_ms int32
  filter_results []
    error_code int16
    error_message string null0+
    matching_acls []
      error_code int16
      error_message string null0+
      resource_type int8
      resource_name string
      pattern_type int8 v1+ =3
      principal string
      host string
      operation int8
      permission_type int8
"""
