#!/bin/sh
# The leader-tag handler as first described, for `consul watch -type=nodes -handler ...`:
# ask the local agent who leads, find the tagged holders and the leader's instance, untag the
# holders that are not the leader, tag the leader. No fencing, break-before-make, value `true`.
# Written as a careful operator would: both reads before any write, one batched delete, no
# writes when already in sync.
#
# Environment: CONSUL_HTTP_ADDR (default 127.0.0.1:8500), the aws CLI's usual AWS_* variables,
# TAGJOIN_TAG_KEY (default consul-leader), TAGJOIN_CLUSTER (optional: scope to consul-cluster=NAME).
set -eu

addr=${CONSUL_HTTP_ADDR:-127.0.0.1:8500}
case $addr in
http://* | https://*) ;;
*) addr=http://$addr ;;
esac
key=${TAGJOIN_TAG_KEY:-consul-leader}
scope=
if [ -n "${TAGJOIN_CLUSTER:-}" ]; then
    scope="Name=tag:${TAGJOIN_CLUSTER_TAG_KEY:-consul-cluster},Values=$TAGJOIN_CLUSTER"
fi

cat >/dev/null # the watch payload is only a trigger

leader=$(curl -fsS --max-time 10 "$addr/v1/status/leader" | tr -d '"')
leader_ip=${leader%:*}
if [ -z "$leader_ip" ]; then
    echo "naive_handler: no leader" >&2
    exit 0
fi

# shellcheck disable=SC2086  # $scope is empty or one filter word
holders=$(aws ec2 describe-instances \
    --filters "Name=tag-key,Values=$key" Name=instance-state-name,Values=running $scope \
    --query 'Reservations[].Instances[].[InstanceId,PrivateIpAddress]' --output text)

stale=
leader_tagged=no
while read -r id ip; do
    [ -n "${id:-}" ] || continue
    if [ "$ip" = "$leader_ip" ]; then
        leader_tagged=yes
    else
        stale="$stale $id"
    fi
done <<EOF
$holders
EOF

target=
if [ "$leader_tagged" = no ]; then
    # shellcheck disable=SC2086
    target=$(aws ec2 describe-instances \
        --filters "Name=private-ip-address,Values=$leader_ip" Name=instance-state-name,Values=running $scope \
        --query 'Reservations[].Instances[].InstanceId' --output text)
    if [ -z "$target" ]; then
        echo "naive_handler: no running instance has the leader's address $leader_ip" >&2
        exit 1
    fi
fi
if [ -n "$stale" ]; then
    # shellcheck disable=SC2086  # one word per instance id
    aws ec2 delete-tags --resources $stale --tags "Key=$key"
fi
if [ -n "$target" ]; then
    aws ec2 create-tags --resources "$target" --tags "Key=$key,Value=true"
fi
echo "naive_handler: leader $leader_ip tagged${stale:+, untagged$stale}"
