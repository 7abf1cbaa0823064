-- Every change of a stock row gets a higher version, so consumers of
-- stock.changed.v1 (index-product) can ignore an event older than one they
-- already applied when deliveries arrive out of order.
ALTER TABLE stock ADD COLUMN version bigint NOT NULL DEFAULT 1;

CREATE FUNCTION stock_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.version := OLD.version + 1;
	RETURN NEW;
END $$;

CREATE TRIGGER stock_version_bump BEFORE UPDATE ON stock
	FOR EACH ROW EXECUTE FUNCTION stock_version_bump();
