package cn.hisbridge.pos;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.io.File;
import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class FileTransactionStoreTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private static Transaction sale(String ref, Transaction.Status s) {
        Transaction t = new Transaction();
        t.ref = ref;
        t.op = Transaction.Op.SALE;
        t.amountFen = 1250;
        t.status = s;
        t.description = "门诊|缴费";
        t.time = new java.text.SimpleDateFormat("yyyyMMddHHmmss").format(new java.util.Date());
        return t;
    }

    @Test
    public void whatWasPutIsThereAfterReopeningTheLastWriteWinning() throws Exception {
        File f = tmp.newFile("store.txt");
        FileTransactionStore s = new FileTransactionStore(f);
        s.put(sale("A.1", Transaction.Status.IN_PROGRESS));
        Transaction paid = sale("A.1", Transaction.Status.PAID);
        paid.channel = "WECHAT";
        paid.payNo = "4200001";
        s.put(paid);
        s.put(sale("B.1", Transaction.Status.IN_PROGRESS));
        s.close();
        FileTransactionStore again = new FileTransactionStore(f);
        assertEquals(Transaction.Status.PAID, again.get("A.1").status);
        assertEquals("4200001", again.get("A.1").payNo);
        assertEquals("门诊缴费", again.get("A.1").description);
        assertEquals(Transaction.Status.IN_PROGRESS, again.get("B.1").status);
        assertNull(again.get("C.1"));
        assertEquals(2, again.all().size());
    }

    @Test
    public void aLineTornByAPowerCutIsDropped() throws Exception {
        File f = tmp.newFile("store.txt");
        FileTransactionStore s = new FileTransactionStore(f);
        s.put(sale("A.1", Transaction.Status.PAID));
        s.close();
        try (FileOutputStream o = new FileOutputStream(f, true)) {
            o.write("TXN|ref=B.1|op=SA".getBytes(StandardCharsets.UTF_8));
        }
        FileTransactionStore again = new FileTransactionStore(f);
        assertEquals(1, again.all().size());
        assertEquals(Transaction.Status.PAID, again.get("A.1").status);
    }

    @Test
    public void finishedTransactionsOlderThanTheRetentionAreDropped() throws Exception {
        File f = tmp.newFile("store.txt");
        FileTransactionStore s = new FileTransactionStore(f);
        Transaction old = sale("OLD.1", Transaction.Status.PAID);
        old.time = "20200101120000";
        s.put(old);
        Transaction running = sale("RUN.1", Transaction.Status.IN_PROGRESS);
        running.time = "20200101120000";
        s.put(running);
        s.close();
        FileTransactionStore again = new FileTransactionStore(f, 30);
        assertNull(again.get("OLD.1"));
        assertEquals("an open one is kept whatever its age", Transaction.Status.IN_PROGRESS, again.get("RUN.1").status);
    }
}
