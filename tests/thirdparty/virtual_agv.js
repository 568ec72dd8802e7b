// A VDA 5050 2.0 virtual AGV that fleetd did not write: vda-5050-lib's AgvController with
// its VirtualAgvAdapter, unchanged. Started by tests/integration/dispatch/test_thirdparty_agv.py.
// Usage: node virtual_agv.js '<json options>' with brokerUrl, interfaceName, manufacturer,
// serialNumber, mapId, x, y, lastNodeId. Prints "ready" once connected; runs until killed.
"use strict";
const { AgvController, VirtualAgvAdapter } = require("vda-5050-lib");

async function main() {
    const opts = JSON.parse(process.argv[2]);
    const agvId = { manufacturer: opts.manufacturer, serialNumber: opts.serialNumber };
    const controller = new AgvController(
        agvId,
        {
            interfaceName: opts.interfaceName,
            transport: { brokerUrl: opts.brokerUrl },
            vdaVersion: "2.0.0",
        },
        { agvAdapterType: VirtualAgvAdapter },
        {
            initialPosition: {
                mapId: opts.mapId, x: opts.x, y: opts.y, theta: 0, lastNodeId: opts.lastNodeId,
            },
            vehicleSpeed: 2,
        },
    );
    await controller.start();
    console.log("ready");
    const stop = async () => { await controller.stop(); process.exit(0); };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch(err => { console.error(err); process.exit(1); });
