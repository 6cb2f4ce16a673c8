/** Sparkplug B topic namespace: spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>] (docs/sparkplug.md). */
export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export interface SparkplugTopics {
  nbirth: string;
  ndeath: string;
  ndata: string;
  ncmd: string;
  dbirth(device: string): string;
  ddeath(device: string): string;
  ddata(device: string): string;
  state(hostId: string): string;
}

export function sparkplugTopics(group: string, node: string): SparkplugTopics {
  const n = (type: string): string => `${SPARKPLUG_NAMESPACE}/${group}/${type}/${node}`;
  return {
    nbirth: n('NBIRTH'),
    ndeath: n('NDEATH'),
    ndata: n('NDATA'),
    ncmd: n('NCMD'),
    dbirth: (d) => `${n('DBIRTH')}/${d}`,
    ddeath: (d) => `${n('DDEATH')}/${d}`,
    ddata: (d) => `${n('DDATA')}/${d}`,
    // Sparkplug 3.0 moved STATE under the namespace (2.2 used STATE/<host_id>).
    state: (h) => `${SPARKPLUG_NAMESPACE}/STATE/${h}`,
  };
}

/** Group, edge node and host ids are single topic levels: 1-128 characters without "/", "+", "#" (Sparkplug 3.0). */
// eslint-disable-next-line no-control-regex -- NUL is exactly what MQTT forbids in a topic level
export const SPARKPLUG_ID = /^[^/+#\u0000]{1,128}$/;
