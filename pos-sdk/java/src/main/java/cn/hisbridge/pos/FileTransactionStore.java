package cn.hisbridge.pos;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The default {@link TransactionStore}: one append-only file, one line per change, each
 * {@link #put} flushed to the disk ({@code FileDescriptor.sync}) before it returns. Opening
 * reads the file back (the last line of a reference wins; a line torn by a power cut is
 * dropped) and rewrites it without superseded lines and without transactions older than
 * {@code retainDays}. Use the app's private storage ({@code Context.getFilesDir()}).
 */
public final class FileTransactionStore implements TransactionStore {
    private final File file;
    private final Map<String, Transaction> byRef = new LinkedHashMap<>();
    private FileOutputStream out;

    public FileTransactionStore(File file) throws IOException {
        this(file, 30);
    }

    public FileTransactionStore(File file, int retainDays) throws IOException {
        this.file = file;
        if (file.exists()) {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(new FileInputStream(file), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    try {
                        Transaction t = Transaction.fromLine(line);
                        byRef.put(t.ref, t);
                    } catch (IllegalArgumentException torn) {
                        // the end of a line cut short by a crash: it never counted
                    }
                }
            }
        }
        String oldest = new SimpleDateFormat("yyyyMMdd")
                .format(new Date(System.currentTimeMillis() - retainDays * 86_400_000L));
        byRef.values().removeIf(t -> t.status.isFinal() && t.time != null && t.time.compareTo(oldest) < 0);
        compact();
    }

    private void compact() throws IOException {
        File parent = file.getAbsoluteFile().getParentFile();
        if (parent != null && !parent.exists() && !parent.mkdirs()) {
            throw new IOException("cannot create " + parent);
        }
        File tmp = new File(file.getPath() + ".tmp");
        try (FileOutputStream o = new FileOutputStream(tmp)) {
            for (Transaction t : byRef.values()) {
                o.write((t.toLine() + "\n").getBytes(StandardCharsets.UTF_8));
            }
            o.getFD().sync();
        }
        Files.move(tmp.toPath(), file.toPath(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        out = new FileOutputStream(file, true);
    }

    @Override
    public synchronized Transaction get(String ref) {
        Transaction t = byRef.get(ref);
        return t == null ? null : t.copy();
    }

    @Override
    public synchronized void put(Transaction t) throws IOException {
        out.write((t.toLine() + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        out.getFD().sync();
        byRef.put(t.ref, t.copy());
    }

    @Override
    public synchronized List<Transaction> all() {
        List<Transaction> l = new ArrayList<>();
        for (Transaction t : byRef.values()) {
            l.add(t.copy());
        }
        return l;
    }

    /** Closes the file (the store is not used after). */
    public synchronized void close() throws IOException {
        out.close();
    }
}
