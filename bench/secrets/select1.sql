-- floor: a query round trip that does nothing
SELECT 1;
