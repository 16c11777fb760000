"""Consumer groups and committed offsets: coordinator discovery, the classic rebalance
protocol, offset commit/fetch, group administration, and the KIP-848 consumer protocol
(ConsumerGroupHeartbeat, ConsumerGroupDescribe)."""

TEXT = """
api 8 OffsetCommit 0-10 flex 8
request
  group_id string
  generation_id_or_member_epoch int32 v1+ =-1
  member_id string v1+
  group_instance_id string v7+ null7+ =null
  retention_time_ms int64 v2-4 =-1
  topics []
    name string v0-9
    topic_id uuid v10+
    partitions []
      partition_index int32
      committed_offset int64
      committed_leader_epoch int32 v6+ =-1
      commit_timestamp int64 v1 =-1
      committed_metadata string null0+
response
  throttle_time_ms int32 v3+
  topics []
    name string v0-9
    topic_id uuid v10+
    partitions []
      partition_index int32
      error_code int16

api 9 OffsetFetch 0-10 flex 6
request
  group_id string v0-7
  topics [] v0-7 null2-7
    name string
    partition_indexes []int32
  groups [] v8+
    group_id string
    member_id string v9+ null9+ =null
    member_epoch int32 v9+ =-1
    topics [] null8+
      name string v8-9
      topic_id uuid v10+
      partition_indexes []int32
  require_stable bool v7+
response
  throttle_time_ms int32 v3+
  topics [] v0-7
    name string
    partitions []
      partition_index int32
      committed_offset int64
      committed_leader_epoch int32 v5+ =-1
      metadata string null0+
      error_code int16
  error_code int16 v2-7
  groups [] v8+
    group_id string
    topics []
      name string v8-9
      topic_id uuid v10+
      partitions []
        partition_index int32
        committed_offset int64
        committed_leader_epoch int32 =-1
        metadata string null8+
        error_code int16
    error_code int16

api 10 FindCoordinator 0-6 flex 3
request
  key string v0-3
  key_type int8 v1+
  coordinator_keys []string v4+
response
  throttle_time_ms int32 v1+
  error_code int16 v0-3
  error_message string v1-3 null1-3
  node_id int32 v0-3
  host string v0-3
  port int32 v0-3
  coordinators [] v4+
    key string
    node_id int32
    host string
    port int32
    error_code int16
    error_message string null4+

api 11 JoinGroup 0-9 flex 6
request
  group_id string
  session_timeout_ms int32
  rebalance_timeout_ms int32 v1+ =-1
  member_id string
  group_instance_id string v5+ null5+ =null
  protocol_type string
  protocols []
    name string
    metadata bytes
  reason string v8+ null8+ =null
response
  throttle_time_ms int32 v2+
  error_code int16
  generation_id int32 =-1
  protocol_type string v7+ null7+ =null
  protocol_name string null7+
  leader string
  skip_assignment bool v9+
  member_id string
  members []
    member_id string
    group_instance_id string v5+ null5+ =null
    metadata bytes

api 12 Heartbeat 0-4 flex 4
request
  group_id string
  generation_id int32
  member_id string
  group_instance_id string v3+ null3+ =null
response
  throttle_time_ms int32 v1+
  error_code int16

api 13 LeaveGroup 0-5 flex 4
request
  group_id string
  member_id string v0-2
  members [] v3+
    member_id string
    group_instance_id string null3+ =null
    reason string v5+ null5+ =null
response
  throttle_time_ms int32 v1+
  error_code int16
  members [] v3+
    member_id string
    group_instance_id string null3+
    error_code int16

api 14 SyncGroup 0-5 flex 4
request
  group_id string
  generation_id int32
  member_id string
  group_instance_id string v3+ null3+ =null
  protocol_type string v5+ null5+ =null
  protocol_name string v5+ null5+ =null
  assignments []
    member_id string
    assignment bytes
response
  throttle_time_ms int32 v1+
  error_code int16
  protocol_type string v5+ null5+ =null
  protocol_name string v5+ null5+ =null
  assignment bytes

api 15 DescribeGroups 0-6 flex 5
request
  groups []string
  include_authorized_operations bool v3+
response
  throttle_time_ms int32 v1+
  groups []
    error_code int16
    error_message string v6+ null6+ =null
    group_id string
    group_state string
    protocol_type string
    protocol_data string
    members []
      member_id string
      group_instance_id string v4+ null4+ =null
      client_id string
      client_host string
      member_metadata bytes
      member_assignment bytes
    authorized_operations int32 v3+ =-2147483648

api 16 ListGroups 0-5 flex 3
request
  states_filter []string v4+
  types_filter []string v5+
response
  throttle_time_ms int32 v1+
  error_code int16
  groups []
    group_id string
    protocol_type string
    group_state string v4+
    group_type string v5+

api 42 DeleteGroups 0-2 flex 2
request
  groups_names []string
response
  throttle_time_ms int32
  results []
    group_id string
    error_code int16

api 47 OffsetDelete 0-0 flex none
request
  group_id string
  topics []
    name string
    partitions []
      partition_index int32
response
  error_code int16
  throttle_time_ms int32
  topics []
    name string
    partitions []
      partition_index int32
      error_code int16

api 68 ConsumerGroupHeartbeat 0-1 flex 0
request
  group_id string
  member_id string
  member_epoch int32
  instance_id string null0+ =null
  rack_id string null0+ =null
  rebalance_timeout_ms int32 =-1
  subscribed_topic_names []string null0+ =null
  subscribed_topic_regex string v1+ null1+ =null
  server_assignor string null0+ =null
  topic_partitions [] null0+ =null
    topic_id uuid
    partitions []int32
response
  throttle_time_ms int32
  error_code int16
  error_message string null0+ =null
  member_id string null0+ =null
  member_epoch int32
  heartbeat_interval_ms int32
  assignment {} null0+ =null
    topic_partitions []
      topic_id uuid
      partitions []int32

api 69 ConsumerGroupDescribe 0-1 flex 0
request
  group_ids []string
  include_authorized_operations bool
response
  throttle_time_ms int32
  groups []
    error_code int16
    error_message string null0+ =null
    group_id string
    group_state string
    group_epoch int32
    assignment_epoch int32
    assignor_name string
    members []
      member_id string
      instance_id string null0+ =null
      rack_id string null0+ =null
      member_epoch int32
      client_id string
      client_host string
      subscribed_topic_names []string
      subscribed_topic_regex string null0+ =null
      assignment {}
        topic_partitions []
          topic_id uuid
          topic_name string
          partitions []int32
      target_assignment {}
        topic_partitions []
          topic_id uuid
          topic_name string
          partitions []int32
      member_type int8 v1+ =-1
    authorized_operations int32 =-2147483648
"""
