package cn.hisbridge.pos.demo;

import cn.hisbridge.pos.FileTransactionStore;
import cn.hisbridge.pos.PosServer;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.RandomAccessFile;

/**
 * The SDK as a POS app would run it, on a serial device or a pseudo-terminal instead of an
 * accessory: {@code java -cp pos-sdk.jar:demo cn.hisbridge.pos.demo.DemoPosApp --port /dev/pts/N
 * --store pos.txn --wallet wallet.txn [--device-id POS-0001]}. It serves the port until killed,
 * opening it again whenever a connection ends.
 */
public final class DemoPosApp {
    public static void main(String[] args) throws Exception {
        String port = null;
        File store = new File("pos-transactions.txt");
        File walletFile = new File("demo-wallet.txt");
        PosServer.Config cfg = new PosServer.Config();
        cfg.model = "HISBRIDGE-SDK-DEMO";
        cfg.version = "sdk-1";
        long scanMs = 150;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--port":
                    port = args[i + 1];
                    break;
                case "--store":
                    store = new File(args[i + 1]);
                    break;
                case "--wallet":
                    walletFile = new File(args[i + 1]);
                    break;
                case "--device-id":
                    cfg.deviceId = args[i + 1];
                    break;
                case "--scan-ms":
                    scanMs = Long.parseLong(args[i + 1]);
                    break;
                default:
                    throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (port == null) {
            throw new IllegalArgumentException("--port is required");
        }
        PosServer server = new PosServer(new FileTransactionStore(store), new DemoAcquirer(walletFile, scanMs, 600), cfg);
        server.setListener(new PosServer.Listener() {
            @Override
            public void onTransaction(cn.hisbridge.pos.Transaction t) {
                System.out.println("transaction " + t.ref + " " + t.op + " " + t.amountFen + " " + t.status);
            }

            @Override
            public void onConnection(boolean connected) {
                System.out.println(connected ? "connected" : "disconnected");
            }
        });
        System.out.println("ready " + port);
        while (true) {
            try (RandomAccessFile f = new RandomAccessFile(port, "rw")) {
                server.serve(new FileInputStream(f.getFD()), new FileOutputStream(f.getFD()));
            } catch (java.io.IOException e) {
                System.out.println("cannot open " + port + ": " + e.getMessage());
            }
            Thread.sleep(500);
        }
    }
}
